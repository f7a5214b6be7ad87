"""Caffe2's ``parallel_workers``: functions run in a loop on worker threads, coordinated.

``init_workers(worker_fun, num_worker_threads=2, worker_name="train", ...)``
registers ``num_worker_threads`` threads that call ``worker_fun(worker_id)``
over and over while their coordinator is active, and returns the process's
``global_coordinator``; ``global_coordinator.start()`` runs every init
function, then starts the threads, ``stop()`` stops and joins them.
``data_workers`` builds its fetcher threads on these classes.  An exception
in a worker stops its coordinator (logged, with the worker's id).
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time

log = logging.getLogger("parallel_workers")
LOG_INT_SECS = 60
JOIN_TIMEOUT_S = 5.0  # a worker blocked in I/O is not waited for forever


def init_workers(worker_fun, num_worker_threads=2, worker_name="train", init_fun=None,
                 external_loggers=None, shutdown_fun=None):
    metrics = Metrics(external_loggers)
    worker_ids = [global_coordinator.get_new_worker_id() for _ in range(num_worker_threads)]
    coordinator = WorkerCoordinator(worker_name, worker_ids, init_fun,
                                    shutdown_fun=shutdown_fun)
    coordinator._workers = [
        threading.Thread(target=run_worker, name=f"parallel_workers worker id {worker_id}",
                         args=[coordinator, Worker(coordinator, worker_id, worker_fun, metrics)])
        for worker_id in worker_ids]
    global_coordinator.add(coordinator)
    return global_coordinator


class Metrics:
    """Sums (and counts) of named values, handed to external loggers' ``log(dict)``."""

    def __init__(self, external_loggers):
        self._metrics = collections.defaultdict(lambda: 0)
        self._external_loggers = external_loggers

    def reset_metrics(self):
        self._metrics = collections.defaultdict(lambda: 0)

    def log_metrics(self):
        for logger in self._external_loggers or ():
            try:
                logger.log(self._metrics)
            except Exception as e:  # noqa: BLE001 (a logger never stops the workers)
                log.warning("Failed to call ExternalLogger: %s", e)

    def put_metric(self, key, value, count=True):
        self._metrics[key] += value
        if count:
            self._metrics[f"{key}_count"] += 1


class State:
    """What a coordinator starts, stops and cleans up with its workers."""

    def start(self):
        pass

    def stop(self):
        pass

    def cleanup(self):
        pass


class WorkerCoordinator:
    def __init__(self, worker_name, worker_ids, init_fun, state=None, shutdown_fun=None):
        self._active = True
        self._started = False
        self._workers = []
        self._worker_name = worker_name
        self._worker_ids = worker_ids
        self._init_fun = init_fun
        self._state = state
        self._shutdown_fun = shutdown_fun

    def is_active(self):
        return self._active

    def init(self, global_coordinator):
        if self._init_fun and not self._started:
            self._init_fun(self, global_coordinator)

    def _start(self):
        if self._started:
            return
        self._active = True
        self._started = True
        if self._state:
            self._state.start()
        for worker in self._workers:
            worker.daemon = True
            worker.start()

    def _stop(self, reason=None):
        self._active = False
        if reason is not None:
            log.error("Data input failed due to an error: %s", reason)
        if self._shutdown_fun and self._started:
            self._shutdown_fun()
        if self._state:
            self._state.stop()
        self._started = False

    def _wait_finish(self, cleanup=None):
        log.info("Wait for workers to die: %s", self._worker_name)
        for worker in self._workers:
            if worker is not threading.current_thread() and worker.ident is not None:
                worker.join(JOIN_TIMEOUT_S)
        success = not any(worker.is_alive() for worker in self._workers)
        for worker in self._workers:
            if worker.is_alive():
                log.warning("Worker %s failed to close while waiting", worker.name)
        if success and self._state:
            self._state.cleanup()
        log.info("All workers terminated: %s", success)
        return success

    def get_worker_ids(self):
        return self._worker_ids


class GlobalWorkerCoordinator:
    def __init__(self):
        self._coordinators = []
        self._fetcher_id_seq = 0
        self._worker_ids = []
        self.register_shutdown_handler()

    def add(self, coordinator):
        self._coordinators.append(coordinator)

    def get_new_worker_id(self):
        worker_id = self._fetcher_id_seq
        self._worker_ids.append(worker_id)
        self._fetcher_id_seq += 1
        return worker_id

    def get_worker_ids(self):
        return self._worker_ids

    def start(self):
        # every init runs, one after another, before any thread starts
        for coordinator in self._coordinators:
            coordinator.init(self)
        for coordinator in self._coordinators:
            coordinator._start()

    def stop(self):
        """Stop every coordinator and join its threads; True when all of them ended."""
        for coordinator in self._coordinators:
            coordinator._stop()
        success = all([coordinator._wait_finish() for coordinator in self._coordinators])
        self._coordinators = []
        return success

    def stop_coordinator(self, worker_name):
        """Stop (and forget) the coordinators called ``worker_name``."""
        for coordinator in self._coordinators:
            if coordinator._worker_name == worker_name:
                coordinator._stop()
                coordinator._wait_finish()
        self._coordinators = [c for c in self._coordinators if c._worker_name != worker_name]

    def register_shutdown_handler(self):
        atexit.register(self.stop)


class Worker:
    def __init__(self, coordinator, worker_id, worker_fun=None, metrics=None):
        self._coordinator = coordinator
        self._worker_id = worker_id
        self._worker_fun = worker_fun
        self._metrics = metrics

    def start(self):
        self._start_time = time.time()

    def run(self):
        self._worker_fun(self._worker_id)

    def handle_exception(self, e):
        log.exception("Exception in worker %s", self._worker_id)
        self._coordinator._stop(f"Exception in worker {self._worker_id}: {e}")

    def finish(self):
        self._metrics.put_metric("worker_time", time.time() - self._start_time)
        self._metrics.log_metrics()


global_coordinator = GlobalWorkerCoordinator()


def run_worker(coordinator, worker):
    while coordinator.is_active():
        worker.start()
        try:
            worker.run()
        except Exception as e:  # noqa: BLE001 (reported, and the coordinator stops)
            worker.handle_exception(e)
        finally:
            worker.finish()

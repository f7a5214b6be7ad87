"""Ray underneath: connect to a cluster (or start a local one), own the shard actors,
and turn what Ray raises into caffe2lite errors that name the shard and the table.

Ray is imported here only, and only when sharding is asked for, so ``import
caffe2lite`` and every single-process path stay free of it.  A local cluster is
started on the loopback interface only (node address 127.0.0.1; Ray's servers
then bind there), without a dashboard and without usage reporting.
"""

from __future__ import annotations

import os

from caffe2lite.runtime.errors import Caffe2LiteError

NAMESPACE = "caffe2lite"


class ShardError(Caffe2LiteError, RuntimeError):
    """A shard actor failed or is gone; the message names the shard and the table."""


class DistributedError(Caffe2LiteError, RuntimeError):
    """Sharding cannot be set up as asked (no Ray, an op that cannot run sharded, ...)."""


def import_ray():
    try:
        import ray
    except ImportError as e:
        raise DistributedError("caffe2lite.distributed needs Ray: pip install "
                               "'caffe2lite[ray]'") from e
    return ray


def start(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to the Ray cluster at ``address``, or start a local one bound to
    127.0.0.1 (``num_cpus``, default 2); a session already running is reused.
    Returns whether this call started Ray (then ``stop`` shuts it down)."""
    if address is None:
        # Read by Ray when it is imported: with it, a local node takes 127.0.0.1 as
        # its address instead of the machine's outward IP, and its servers bind there.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address is not None:
        ray.init(address=address, namespace=NAMESPACE)
        return True
    from ray._private import ray_constants  # Ray imported before the variable was set

    ray_constants.ENABLE_RAY_CLUSTER = False
    ray.init(num_cpus=num_cpus or 2, include_dashboard=False, namespace=NAMESPACE,
             _node_ip_address="127.0.0.1")
    return True


class ShardSet:
    """The shard actors of one set of tables: actor k holds shard k of every table
    that has more than k shards.  Named actors (``name``) can be found by other
    trainer processes on the same cluster (Hogwild); a set found that way
    (``create=False``) does not own them: ``kill`` leaves them to their maker."""

    def __init__(self, count: int, name: str | None = None, create: bool = True,
                 actor_options: dict | None = None, chunk_rows: int | None = None):
        self.count = count
        self.name = name
        self.owner = create
        self.chunk_rows = chunk_rows
        self.actor_options = dict(actor_options or {})
        self.actors = [self._create(k) for k in range(count)] if create else \
            [self._lookup(k) for k in range(count)]

    def _actor_name(self, k: int) -> str:
        return f"{self.name}/shard-{k}"

    def _create(self, k: int):
        ray = import_ray()
        from caffe2lite.distributed.shard_actor import ShardActor

        options = {"num_cpus": 0, "max_restarts": 0, **self.actor_options}
        if self.name is not None:
            options.update(name=self._actor_name(k), namespace=NAMESPACE)
        return ray.remote(ShardActor).options(**options).remote(k, self.chunk_rows)

    def _lookup(self, k: int):
        ray = import_ray()
        try:
            return ray.get_actor(self._actor_name(k), namespace=NAMESPACE)
        except ValueError as e:
            raise DistributedError(f"no shard actor '{self._actor_name(k)}' on this Ray "
                                   f"cluster: start the tables with distributed.shard(..., "
                                   f"name='{self.name}') first") from e

    def replace_dead(self) -> list[int]:
        """Start a fresh, empty actor for each shard that no longer answers."""
        ray = import_ray()
        dead = []
        for k, actor in enumerate(self.actors):
            try:
                ray.get(actor.ping.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - any failure to answer means: replace it
                dead.append(k)
        for k in dead:
            if self.name is not None:
                try:
                    ray.kill(self.actors[k])
                except Exception:  # noqa: BLE001 - already gone
                    pass
            self.actors[k] = self._create(k)
        return dead

    def kill(self) -> None:
        if not self.owner:
            return
        ray = import_ray()
        for actor in self.actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass


def call(shards: ShardSet, k: int, method: str, *args):
    """Submit ``method(*args)`` to shard k; returns an ObjectRef."""
    return getattr(shards.actors[k], method).remote(*args)


def wait(pending, where: str):
    """Results of ``pending`` [(shard, table, ref)], in order; a shard that failed or
    died raises ShardError naming it, its table and ``where`` (the op)."""
    ray = import_ray()
    results = []
    failure = None
    for k, table, ref in pending:
        try:
            results.append(ray.get(ref))
        except ray.exceptions.RayTaskError as e:
            cause = e.cause if getattr(e, "cause", None) is not None else e
            failure = failure or ShardError(f"{where}: shard {k} of table '{table}' failed: "
                                            f"{type(cause).__name__}: {cause}")
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
            failure = failure or ShardError(
                f"{where}: shard {k} of table '{table}' is gone ({type(e).__name__}); its "
                f"rows since the last checkpoint are lost: restore every shard with "
                f"tables.restore(<checkpoint>) and continue")
    if failure is not None:
        raise failure
    return results

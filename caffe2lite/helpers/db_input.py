"""``db_input``: a DB reader made by the init net (CreateDB into ``dbreader_<db>``) and a
TensorProtosDBInput op reading ``batch_size`` records per run into ``blobs_out``."""


def db_input(model, blobs_out, batch_size, db, db_type):
    dbreader = model.param_init_net.CreateDB([], "dbreader_" + db, db=db, db_type=db_type)
    return model.net.TensorProtosDBInput(dbreader, blobs_out, batch_size=batch_size)

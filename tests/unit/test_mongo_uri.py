from altcraft.stores import documents


def test_mongo_uri_from_altcraft_keys():
    from altcraft.config import validate

    secret = "k" * 32
    config, _ = validate({
        "PRIVATE_KEY": secret, "WEBAPI_PRIVATE_KEY": secret, "TRACKING_CRYPT_KEY": secret,
        "CONTROLDB_USER": "ak", "CONTROLDB_PASS": "p@ss word", "CONTROLDB_REPL_SET_NAME": "rs0",
        "CONTROLDB": [{"IP": "db1", "PORT": 27017}, {"IP": "db2"}],
    })
    assert documents.mongo_uri(config, "control") == \
        "mongodb://ak:p%40ss+word@db1:27017,db2:27017/?authSource=admin&replicaSet=rs0&w=majority"
    assert documents.mongo_uri(config, "account") == "mongodb://127.0.0.1:27018/"

"""The SharedLayer's botocore data, as its build prepares it: adserve's services only, each file also pickled, and
clients made from the pickles alone with the same models as botocore's own JSON."""

import shutil
from pathlib import Path

import botocore
import pytest
from adserve.dal import botocore_session
from adserve.dal.sdk_models import PARSED_SUFFIX, SERVICES, main, read_json, read_parsed
from botocore.loaders import Loader

BOTOCORE_DATA = Path(botocore.__file__).parent / "data"
OTHER_SERVICE = "lambda"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This botocore's data for SERVICES, one other service and the shared files, prepared as the layer's build does."""
    data = tmp_path_factory.mktemp("sdk") / "data"
    kept = {*SERVICES, OTHER_SERVICE}

    def others(directory: str, names: list[str]) -> list[str]:
        at_top = Path(directory) == BOTOCORE_DATA
        return [name for name in names if at_top and (BOTOCORE_DATA / name).is_dir() and name not in kept]

    shutil.copytree(BOTOCORE_DATA, data, ignore=others)
    main([str(data)])
    return data


def _stem(path: Path) -> str:
    return str(path).removesuffix(".gz").removesuffix(".json")


def test_only_adserves_services_are_left(prepared: Path) -> None:
    assert sorted(entry.name for entry in prepared.iterdir() if entry.is_dir()) == sorted(SERVICES)


def test_every_json_file_left_has_a_pickle_of_what_it_parses_to(prepared: Path) -> None:
    files = list(prepared.rglob("*.json*"))
    assert len(files) >= 4 * len(SERVICES)
    for path in files:
        assert read_parsed(_stem(path)) == read_json(_stem(path)), path
    assert read_parsed(str(prepared / "no-such-file")) is None


def test_the_endpoints_keep_every_partition_with_the_services_left(prepared: Path) -> None:
    original = Loader().load_data("endpoints")
    trimmed = read_parsed(str(prepared / "endpoints"))
    assert len(trimmed["partitions"]) == len(original["partitions"])
    for ours, botocores in zip(trimmed["partitions"], original["partitions"], strict=True):
        assert ours["services"] == {name: s for name, s in botocores["services"].items() if name in SERVICES}
        assert {k: v for k, v in ours.items() if k != "services"} == {
            k: v for k, v in botocores.items() if k != "services"
        }
    assert "s3" in trimmed["partitions"][0]["services"]


def test_clients_are_made_from_the_pickles_alone(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the JSON removed, every file a client reads must come from a pickle, and equal botocore's own."""
    pickles = tmp_path / "data"
    shutil.copytree(prepared, pickles, ignore=shutil.ignore_patterns("*.json", "*.json.gz"))
    monkeypatch.setenv("AWS_DATA_PATH", str(pickles))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    session = botocore_session.session.__wrapped__()
    loader = session.get_component("data_loader")
    for service in SERVICES:
        client = session.create_client(service)
        assert client.meta.region_name == "eu-west-1"
        version = loader.determine_latest_version(service, "service-2")
        for type_name in ("service-2", "endpoint-rule-set-1"):
            model, path = loader.load_data_with_path(f"{service}/{version}/{type_name}")
            assert Path(path + PARSED_SUFFIX).is_relative_to(pickles)
            assert model == Loader().load_service_model(service, type_name)
    endpoints, path = loader.load_data_with_path("endpoints")
    assert Path(path).is_relative_to(pickles)
    assert set(endpoints["partitions"][0]["services"]) == set(SERVICES)

"""The clients' session loads only the service models dal uses, without listing botocore's whole data directory."""

import pytest
from adserve.dal import botocore_session
from adserve.dal.sdk_models import SERVICES
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader


def test_the_session_lists_only_the_services_it_creates_clients_for() -> None:
    loader = botocore_session.session.__wrapped__().get_component("data_loader")
    assert loader.list_available_services("service-2") == list(SERVICES)
    assert loader.list_available_services("endpoint-rule-set-1") == list(SERVICES)
    assert loader.list_available_services("no-such-model-type") == []


def test_each_client_loads_its_service_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    session = botocore_session.session.__wrapped__()
    for service in SERVICES:
        client = session.create_client(service)
        assert client.meta.service_model.service_name == service
        assert client.meta.region_name == "eu-west-1"


def test_a_service_outside_the_list_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with pytest.raises(UnknownServiceError):
        botocore_session.session.__wrapped__().create_client("lambda")


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("type_name", ["service-2", "endpoint-rule-set-1"])
def test_models_parse_into_plain_dicts_equal_to_botocores_own(service: str, type_name: str) -> None:
    ours = botocore_session.session.__wrapped__().get_component("data_loader").load_service_model(service, type_name)
    botocores = Loader().load_service_model(service, type_name)
    assert type(ours) is dict  # not botocore's OrderedDict, whose per-object hook is the slow part of parsing
    assert ours == botocores
    assert list(ours) == list(botocores)  # in the same order


def test_the_endpoints_and_partitions_data_parse_equal_to_botocores_own() -> None:
    loader = botocore_session.session.__wrapped__().get_component("data_loader")
    for name in ("endpoints", "partitions", "sdk-default-configuration", "_retry"):
        assert loader.load_data(name) == Loader().load_data(name)
    assert loader.file_loader.load_file("/no/such/file") is None

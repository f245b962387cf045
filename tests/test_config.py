"""Settings: the reference file, defaults, overrides and messages."""

from __future__ import annotations

import pytest

from jivex_core.config import RemoteNode, build_settings, load_settings
from jivex_core.errors import ConfigError
from tests.helpers import REPO


def test_reference_file_loads_and_equals_the_defaults():
    settings = load_settings(REPO / "resources" / "jivex.toml")
    assert settings == build_settings({})
    assert settings.network.ae_title == "JIVEX"
    assert settings.network.storage_port == 4499
    assert settings.network.query_port == 4498
    assert settings.network.max_pdu == 32768
    assert settings.network.acse_timeout == 60


def test_command_line_overrides_win(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[network]\nae_title = "FROMFILE"\nstorage_port = 5000\n')
    settings = load_settings(
        config, {"network.storage_port": 6000, "network.ae_title": None}
    )
    assert settings.network.storage_port == 6000
    assert settings.network.ae_title == "FROMFILE"


def test_remote_nodes_from_file_and_command_line(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[[remote]]\nae_title = "PACS"\nhost = "127.0.0.1"\nport = 11112\n'
    )
    extra = RemoteNode.parse("ORTHANC@127.0.0.1:4242").model_dump()
    settings = load_settings(config, {"remote": [extra]})
    assert settings.remote_node("PACS").port == 11112
    assert settings.remote_node("ORTHANC").host == "127.0.0.1"
    assert settings.remote_node("NOPE") is None


@pytest.mark.parametrize("text", ["PACS", "PACS@host", "@h:1", "P@h:0", "P@h:x"])
def test_bad_remote_option_is_explained(text):
    with pytest.raises(ConfigError, match="--remote"):
        RemoteNode.parse(text)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"network": {"ae_title": ""}}, "network.ae_title: '' is not a valid AE title"),
        ({"network": {"ae_title": "A\\B"}}, "is not a valid AE title"),
        ({"network": {"accepted_calling_aets": ["OK", " "]}}, "not a valid AE title"),
        ({"storage": {"min_free_space_mb": -1}}, "storage.min_free_space_mb"),
        ({"schema_version": 2}, "schema_version: 2 is not supported"),
        (
            {
                "remote": [
                    {"ae_title": "X", "host": "h", "port": 1},
                    {"ae_title": "X", "host": "h", "port": 2},
                ]
            },
            "AE title 'X' is configured twice",
        ),
        ({"surprise": 1}, "surprise: unknown key"),
        ({"network": {"storage_port": True}}, "network.storage_port"),
        ({"network": {"storage_port": "4499"}}, "network.storage_port"),
        ({"storage": {"fsync": "yes"}}, "storage.fsync"),
        ({"schema_version": "1"}, "schema_version"),
        ({"network": {"max_associations": 10**20}}, "network.max_associations"),
        ({"network": {"bind_address": "::1"}}, "'::1' is not an IPv4 address"),
        ({"network": {"bind_address": "not an address"}}, "network.bind_address"),
        ({"network": {"web_port": 4499}}, "network.storage_port and network.web_port"),
        ({"storage": {"data_dir": ""}}, "storage.data_dir: an empty path"),
        ({"storage": {"sop_classes": ["not-a-uid"]}}, "'not-a-uid' is not a UID"),
        ({"storage": {"transfer_syntaxes": ["1.2.3.4"]}}, "not a known transfer"),
        ({"storage": {"lifetime_days": -1}}, "storage.lifetime_days: Input should"),
        ({"storage": {"lifetime_days": 1.5}}, "storage.lifetime_days"),
        ({"storage": {"lifetime_days": "30"}}, "storage.lifetime_days"),
    ],
)
def test_messages_name_the_key(data, message):
    with pytest.raises(ConfigError) as err:
        build_settings(data, "f.toml")
    assert message in str(err.value)
    assert str(err.value).startswith("f.toml: ")


def test_a_file_that_is_not_utf8_is_reported(tmp_path):
    config = tmp_path / "c.toml"
    config.write_bytes(b"\xff\xfe[network]\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(config)


@pytest.mark.parametrize("body", ['storage = "x"\n', "storage = []\n"])
def test_a_section_that_is_not_a_table_is_reported(tmp_path, body):
    config = tmp_path / "c.toml"
    config.write_text(body)
    with pytest.raises(ConfigError, match=r"storage: must be a table"):
        load_settings(config, {"storage.data_dir": str(tmp_path)})


def test_a_relative_data_folder_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, {"storage.data_dir": "archive"})
    assert settings.data_dir == tmp_path / "archive"


def test_viewer_overlay_settings_are_checked():
    settings = build_settings(
        {"viewer": {"cache_mb": 256, "overlay": {"CT": {"top_left": ["{PatientID}"]}}}}
    )
    assert settings.viewer.overlay["CT"].top_left == ["{PatientID}"]
    assert settings.viewer.overlay["CT"].bottom_right is None
    with pytest.raises(ConfigError, match=r"viewer\.overlay: 'ct' is not a modality"):
        build_settings({"viewer": {"overlay": {"ct": {}}}})
    with pytest.raises(ConfigError, match=r"viewer\.cache_mb"):
        build_settings({"viewer": {"cache_mb": 1}})
    with pytest.raises(
        ConfigError, match=r"viewer\.overlay\.CT\.top_centre: unknown key"
    ):
        build_settings({"viewer": {"overlay": {"CT": {"top_centre": []}}}})

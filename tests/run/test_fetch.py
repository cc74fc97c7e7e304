import functools
import hashlib
import http.server
import shutil
import threading

import pytest

from fewshot.cli import main
from fewshot.core import registry
from fewshot.core.data import file_digest
from fewshot.core.dataset import DownloadFile
from fewshot.tasks.omniglot import Omniglot

SERVED = ["images_background_small1.zip", "all_runs.zip", "vinyals/val.txt"]


@pytest.fixture
def server(tmp_path, data_root):
    """A local HTTP server on 127.0.0.1 serving real Omniglot files."""
    served = tmp_path / "served"
    for name in SERVED:
        (served / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_root / "omniglot" / name, served / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()


@pytest.fixture
def manifest(monkeypatch, data_root):
    official = {file.path: file.md5 for file in Omniglot.manifest}
    entries = tuple(DownloadFile(name, "http://127.0.0.1:9/unused/" + name, official[name]) for name in SERVED)
    assert all(file_digest(data_root / "omniglot" / n) == official[n] for n in SERVED), "published md5s"
    monkeypatch.setattr(Omniglot, "manifest", entries)
    return entries


def _main(capfd, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capfd.readouterr()
    return exit_info.value.code, out, err


def test_fetch_downloads_and_checks_md5(server, manifest, tmp_path, capfd):
    url, _ = server
    root = tmp_path / "root"
    code, out, err = _main(capfd, "data", "fetch", "omniglot", "--data-root", str(root), "--mirror", url)
    assert code == 0, err
    for file in manifest:
        assert file_digest(root / "omniglot" / file.path) == file.md5
    assert out.count("md5 ok") == 3
    code, out, _ = _main(capfd, "data", "fetch", "omniglot", "--data-root", str(root), "--mirror", url)
    assert code == 0 and out.count("already present") == 3


def test_a_damaged_download_is_discarded(server, manifest, tmp_path, capfd):
    url, served = server
    raw = (served / "all_runs.zip").read_bytes()
    (served / "all_runs.zip").write_bytes(raw[:-100] + bytes(100))
    root = tmp_path / "root"
    code, _, err = _main(capfd, "data", "fetch", "omniglot", "--data-root", str(root), "--mirror", url)
    assert code == 2 and "not the published" in err and err.count("\n") == 1
    assert not (root / "omniglot" / "all_runs.zip").exists()
    assert sorted(p.name for p in (root / "omniglot").iterdir()) == ["images_background_small1.zip"], "no partial files"


def test_an_unreachable_server_is_one_line(manifest, tmp_path, capfd):
    code, _, err = _main(
        capfd, "data", "fetch", "omniglot", "--data-root", str(tmp_path), "--mirror", "http://127.0.0.1:9"
    )
    assert code == 2 and err.startswith("error: cannot download") and err.count("\n") == 1
    assert not any((tmp_path / "omniglot").iterdir())


def test_unknown_and_local_datasets(tmp_path, capfd):
    code, _, err = _main(capfd, "data", "fetch", "nope", "--data-root", str(tmp_path))
    assert code == 2 and "unknown dataset 'nope'" in err
    code, _, err = _main(capfd, "data", "fetch", "glyphs", "--data-root", str(tmp_path))
    assert code == 2 and "glyphs cannot be downloaded" in err and err.count("\n") == 1
    code, _, err = _main(capfd, "data", "fetch", "digits", "--data-root", str(tmp_path))
    assert code == 2 and f"missing mnist10k.npz, usps.npz, mnist_m.npz under {tmp_path / 'digits'}" in err, err


def test_any_dataset_with_a_manifest_is_fetched(server, tmp_path, capfd, monkeypatch):
    """The downloader reads the dataset's manifest and names no dataset: a dataset's files go to its folder."""
    url, served = server
    md5 = file_digest(served / "vinyals" / "val.txt")
    monkeypatch.setattr(
        registry.dataset_class("glyphs"), "manifest", (DownloadFile("val.txt", f"{url}/vinyals/val.txt", md5),)
    )
    code, out, err = _main(capfd, "data", "fetch", "glyphs", "--data-root", str(tmp_path))
    assert code == 0, err
    assert file_digest(tmp_path / "glyphs" / "val.txt") == md5 and out.count("md5 ok") == 1


def test_the_manifest_holds_the_official_checksums():
    md5 = {file.path: file.md5 for file in Omniglot.manifest}
    assert md5["images_background.zip"] == "68d2efa1b9178cc56df9314c21c6e718"
    assert md5["images_evaluation.zip"] == "6b91aef0f799c5bb55b94e3f2daec811"
    assert all(len(d) == 32 and int(d, 16) >= 0 for d in md5.values())
    assert hashlib.md5(b"").hexdigest() not in md5.values()

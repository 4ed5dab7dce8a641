"""What is kept of a runtime's tar of /cortex/output/ (no container needed)."""

from __future__ import annotations

import io
import tarfile
import tempfile

import pytest

from app.outputs import packing


def runtime_tar(
    entries: dict[str, bytes | None], *, symlink: str | None = None, top: str = "output"
) -> io.BytesIO:
    """A tar as the runtime hands it over: the directory itself (named `top`), then entries
    under it."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, content in {top: None, **entries}.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        if symlink is not None:
            info = tarfile.TarInfo(symlink)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    data.seek(0)
    return data


def pack(source: io.BytesIO, max_bytes: int = 1000) -> tuple[packing.Packed | None, bytes]:
    with tempfile.TemporaryFile() as out:
        packed = packing.pack(source, out, "outputs/job_x", max_bytes)
        out.seek(0)
        return packed, out.read()


class TestPack:
    def test_one_top_level_file_is_kept_as_itself(self) -> None:
        packed, body = pack(runtime_tar({"output/report.json": b"{}"}))
        assert packed is not None
        assert (packed.file_name, packed.content_type, body) == (
            "report.json",
            "application/json",
            b"{}",
        )
        assert packed.file_count == 1 and packed.size_bytes == 2

    def test_one_file_in_a_subdirectory_keeps_its_path_in_a_tar_gz(self) -> None:
        packed, body = pack(runtime_tar({"output/sub": None, "output/sub/a.txt": b"a"}))
        assert packed is not None and packed.file_name is None
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            assert tar.getnames() == ["sub", "sub/a.txt"]

    def test_names_leaving_the_directory_and_links_are_dropped(self) -> None:
        source = runtime_tar(
            {"output/ok.txt": b"ok", "output/../evil": b"x", "other/x": b"y"},
            symlink="output/link",
        )
        packed, body = pack(source)
        assert packed is not None and packed.file_name == "ok.txt" and body == b"ok"

    def test_podmans_names_for_a_volume_directory_are_read_as_relative(self) -> None:
        # podman names a volume mount point "" and its files "/a.txt": not absolute paths.
        source = runtime_tar(
            {"/sub": None, "/sub/a.txt": b"a", "/b.txt": b"b", "/../evil": b"x"}, top=""
        )
        packed, body = pack(source)
        assert packed is not None and packed.file_count == 2
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            assert tar.getnames() == ["b.txt", "sub", "sub/a.txt"]

    def test_an_empty_directory_is_no_output(self) -> None:
        assert pack(runtime_tar({}))[0] is None

    def test_more_bytes_than_the_limit_raise(self) -> None:
        with pytest.raises(packing.OutputTooLarge):
            pack(runtime_tar({"output/a": b"x" * 600, "output/b": b"y" * 600}))

    def test_a_compressed_single_file_is_sent_as_gzip(self) -> None:
        packed, _ = pack(runtime_tar({"output/data.tar.gz": b"\x1f\x8b"}))
        assert packed is not None and packed.content_type == "application/gzip"

    def test_more_files_than_the_limit_raise(self) -> None:
        entries: dict[str, bytes | None] = {
            f"output/f{i}": b"" for i in range(packing.MAX_FILES + 1)
        }
        with pytest.raises(packing.OutputTooLarge) as raised:
            pack(runtime_tar(entries))
        assert raised.value.files == packing.MAX_FILES + 1

"""What the deploy takes for a blank volume, the only kind it formats (mailstack.facts.
VolumeContent, roles/volumes.py): the fact's own command on block devices of this machine."""

import contextlib
import subprocess
from pathlib import Path

import pytest

from mailstack.facts import VolumeContent


@contextlib.contextmanager
def loop_device(image: Path):
    device = subprocess.run(
        ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], check=False)


def content(device: str):
    fact = VolumeContent()
    result = subprocess.run(
        ["sh", "-c", fact.command(device)], capture_output=True, text=True, check=True
    )
    return fact.process(result.stdout.splitlines())


@pytest.mark.parametrize(
    ("prepare", "expected"),
    [
        ("", ""),
        ("mkfs.ext4 -q -F {image}", "ext4"),
        # Data no tool recognises, past the zeros of a blank volume's start.
        ("printf 'mail' | dd of={image} bs=1 seek=4096 conv=notrunc status=none", "unknown"),
        # An MBR partition table: one Linux partition from sector 2048, and the signature.
        (
            "printf '\\000\\000\\000\\000\\203\\000\\000\\000\\000\\010\\000\\000"
            "\\000\\000\\001\\000' | dd of={image} bs=1 seek=446 conv=notrunc status=none && "
            "printf '\\125\\252' | dd of={image} bs=1 seek=510 conv=notrunc status=none",
            "dos",
        ),
    ],
)
def test_only_a_blank_volume_counts_as_blank(tmp_path, prepare, expected):
    image = tmp_path / "volume.img"
    with open(image, "wb") as handle:
        handle.truncate(64 * 2**20)
    if prepare:
        subprocess.run(["sh", "-c", prepare.format(image=image)], check=True)
    with loop_device(image) as device:
        assert content(device) == expected


def test_a_volume_attached_elsewhere_is_not_there(tmp_path):
    assert content(str(tmp_path / "no-such-device")) is None

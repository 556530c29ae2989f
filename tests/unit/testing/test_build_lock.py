import subprocess
import sys
import time
from pathlib import Path

import pytest

from localcsi.testing.build_lock import build_lock

pytestmark = pytest.mark.unit

HOLDER = """
import sys, time
from pathlib import Path
from localcsi.testing.build_lock import build_lock
with build_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    Path(sys.argv[1] + ".done").touch()  # the last thing done under the lock
"""


def test_a_second_process_waits_until_the_first_lets_go(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "build.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), "1.0"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        asked = time.monotonic()
        with build_lock(lock):
            waited = time.monotonic() - asked
            assert Path(f"{lock}.done").exists(), "the lock was granted while the other process still held it"
        assert waited > 0.3
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_released_after_an_error(tmp_path: Path) -> None:
    lock = tmp_path / "build.lock"
    with pytest.raises(RuntimeError), build_lock(lock):
        raise RuntimeError("build failed")
    done = subprocess.run(
        [sys.executable, "-c", HOLDER, str(lock), "0"], capture_output=True, text=True, timeout=10, check=True
    )
    assert done.stdout.strip() == "held"

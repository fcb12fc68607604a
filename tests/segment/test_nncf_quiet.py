"""While NNCF quantizes: its info log and progress bars are silenced, its warnings go to stderr."""

import logging
import threading

import pytest

pytest.importorskip("nncf")
rich = pytest.importorskip("rich")

from segment.nncf_quiet import quiet_nncf  # noqa: E402


def test_info_and_bars_dropped_warnings_kept_on_stderr(capsys):
    from nncf.common.logging import nncf_logger
    from nncf.common.logging.track_progress import track

    level = nncf_logger.level
    with quiet_nncf():
        for _ in track(range(3), description="Statistics collection"):  # NNCF's own progress bar
            pass
        nncf_logger.info("ignored nodes found")
        nncf_logger.warning("calibration set is small")
        print("our own line")
    for _ in track(range(3), description="after the block"):
        pass
    out, err = capsys.readouterr()
    assert "Statistics collection" not in out + err and "ignored nodes" not in out + err
    assert "calibration set is small" in err and "calibration set" not in out
    assert "our own line" in out  # the project's output is untouched
    assert "after the block" in out  # everything restored: NNCF used elsewhere draws and logs as before
    assert nncf_logger.level == level and not rich.get_console().quiet


def test_restored_only_when_the_last_thread_leaves():
    """The demo's background preparation and a request may quantize at once."""
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with quiet_nncf():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    t = threading.Thread(target=first)
    t.start()
    first_in.wait(5)
    with quiet_nncf():
        second_in.set()
        first_out.wait(5)
        t.join()
        assert rich.get_console().quiet  # still quiet: this block has not ended
        assert logging.getLogger("nncf").level == logging.WARNING
    assert not rich.get_console().quiet

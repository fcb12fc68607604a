"""While a thread quantizes: NNCF's info log and that thread's stdout are dropped, warnings go to stderr."""

import logging
import sys
import threading

import pytest

pytest.importorskip("nncf")

from segment.nncf_quiet import quiet_nncf  # noqa: E402


def test_info_and_own_stdout_dropped_warnings_kept_on_stderr(capsys):
    from nncf.common.logging import nncf_logger

    level = nncf_logger.level
    with quiet_nncf():
        print("progress bar")
        nncf_logger.info("ignored nodes found")
        nncf_logger.warning("calibration set is small")
    print("after")
    out, err = capsys.readouterr()
    assert out == "after\n"
    assert "calibration set is small" in err and "ignored nodes" not in err
    assert nncf_logger.level == level  # restored: NNCF used elsewhere logs as before


def test_other_threads_keep_their_stdout(capsys):
    """The demo serves requests while its background thread quantizes: their output is not lost."""
    inside, done = threading.Event(), threading.Event()

    def quantizing():
        with quiet_nncf():
            inside.set()
            print("bar")
            done.wait(5)

    t = threading.Thread(target=quantizing)
    t.start()
    inside.wait(5)
    print("request served")
    done.set()
    t.join()
    out, _ = capsys.readouterr()
    assert out == "request served\n"


def test_nested_threads_restore_once_the_last_leaves():
    stdout = sys.stdout
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
        assert sys.stdout is not stdout  # still quiet: this thread has not left
        assert logging.getLogger("nncf").level == logging.WARNING
    assert sys.stdout is stdout

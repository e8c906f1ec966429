"""A store that fails to commit: the client gets an error answer, the server goes on."""

from __future__ import annotations

import pytest

from tests._servers import python_argv, spawn

from .wire import ERROR_PUT, KEY_MAX, KEY_MIN, Raw, put_request

pytestmark = pytest.mark.integration


def test_a_failing_commit_answers_an_error_and_the_server_goes_on() -> None:
    with spawn(python_argv("tests.tstorage_server._failing_store_server")) as server:
        with Raw(server.port) as c:
            c.send(put_request([((1, 2, 3, 4, 5), b"lost")], with_acq=True))
            assert c.recv_until_close() == ERROR_PUT
        with Raw(server.port) as c:
            status, acq = c.get_acq(KEY_MIN, KEY_MAX)
            assert status == 0 and acq > 0
            status, got, _ = c.get()
            assert status == 0 and got == []
            # The acq values reserved for the failed PUT are not reused or waited for.
            assert c.get_acq(KEY_MIN, KEY_MAX)[1] > acq

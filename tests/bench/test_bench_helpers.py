"""Percentiles, and the delay proxy the benchmark puts in front of the ledger."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from bench.delay_proxy import DelayProxy, proxied_connection_string
from bench.stats import median, percentile, ratio

pytestmark = pytest.mark.timeout(30)


def test_percentiles_interpolate_between_ranks():
    values = [10, 20, 30, 40, 50]
    assert percentile(values, 50) == 30 and median([4, 1, 3, 2]) == 2.5
    assert percentile(values, 95) == pytest.approx(48.0)
    assert percentile(values, 0) == 10 and percentile(values, 100) == 50
    assert percentile([7], 95) == 7
    with pytest.raises(ValueError):
        percentile([], 50)
    assert ratio(3, 2) == 1.5


def test_only_the_table_endpoint_is_redirected():
    cs = ("DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=a2V5==;BlobEndpoint=http://127.0.0.1:1/dev;"
          "TableEndpoint=http://127.0.0.1:2/dev;")
    out = proxied_connection_string(cs, 9999)
    assert "TableEndpoint=http://127.0.0.1:9999/dev;" in out
    assert "BlobEndpoint=http://127.0.0.1:1/dev;" in out and "AccountKey=a2V5==;" in out


def _echo_server(think: float = 0.0, ends_with: bytes = b""):
    """Echoes what it got, after ``think`` seconds, once it has seen ``ends_with`` (a request in several chunks)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                got = b""
                while data := conn.recv(4096):
                    got += data
                    if got.endswith(ends_with):
                        time.sleep(think)
                        conn.sendall(got)
                        got = b""

    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_each_round_trip_takes_the_delay_once_and_answers_in_order():
    srv = _echo_server()
    proxy = DelayProxy("127.0.0.1", srv.getsockname()[1], 0.05).start()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port)) as c:
            times = []
            for word in (b"one", b"two", b"three"):
                started = time.monotonic()
                c.sendall(word)
                assert c.recv(100) == word
                times.append(time.monotonic() - started)
        assert all(0.045 <= t < 0.5 for t in times)  # each round trip pays the delay once
    finally:
        proxy.stop()
        srv.close()


def test_the_servers_own_time_is_inside_the_delay_and_a_request_in_chunks_pays_it_once():
    srv = _echo_server(think=0.08, ends_with=b";")
    proxy = DelayProxy("127.0.0.1", srv.getsockname()[1], 0.2).start()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port)) as c:
            times = []
            for _ in range(3):
                started = time.monotonic()
                c.sendall(b"head")  # the headers, then the body a moment later: one request
                time.sleep(0.03)
                c.sendall(b"body;")
                assert c.recv(100) == b"headbody;"
                times.append(time.monotonic() - started)
        # 0.2 s from the first bytes, Azurite's 0.08 s and the body's 0.03 s inside it, not 0.31 s or 0.43 s
        assert all(0.19 <= t < 0.3 for t in times), times
    finally:
        proxy.stop()
        srv.close()


def test_the_proxy_runs_in_a_process_of_its_own_and_takes_a_new_delay():
    from bench.delay_proxy import DelayProxyProcess

    srv = _echo_server()
    proxy = DelayProxyProcess("127.0.0.1", srv.getsockname()[1], 0.0).start()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port)) as c:
            def round_trip() -> float:
                started = time.monotonic()
                c.sendall(b"x")
                assert c.recv(10) == b"x"
                return time.monotonic() - started

            assert round_trip() < 0.1
            proxy.set_delay(0.15)
            assert 0.14 <= round_trip() < 0.5
    finally:
        proxy.stop()
        srv.close()

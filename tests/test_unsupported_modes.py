"""attach() on sessions without JVM access says what to do instead."""

from __future__ import annotations

import pytest

import pipetrace
from pipetrace._jvm import is_blocked_jvm_error
from pipetrace.errors import SparkConnectError


class ConnectLikeSession:
    """Shape of a Spark Connect / serverless session: no _jsparkSession, no JVM."""

    version = "4.0.0"


def test_attach_without_a_jvm_points_to_the_cluster_setup():
    with pytest.raises(SparkConnectError, match="init-script"):
        pipetrace.attach(ConnectLikeSession())


@pytest.mark.parametrize(("message", "blocked"), [
    ("py4j.security.Py4JSecurityException: Method public ... is not whitelisted", True),
    ("Constructor public io.pipetrace.Bridge() is not whitelisted.", True),
    ("java.lang.ClassNotFoundException: io.pipetrace.Bridge", False),
])
def test_blocked_py4j_calls_are_recognized(message, blocked):
    assert is_blocked_jvm_error(Exception(message)) is blocked

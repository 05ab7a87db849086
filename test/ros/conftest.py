"""Fixtures shared by the rclpy integration tests."""

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.context import Context  # noqa: E402


@pytest.fixture(scope="module")
def ros_context():
    """An rclpy context of this test module's own (DDS confined by test/conftest.py)."""
    ctx = Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        rclpy.shutdown(context=ctx)

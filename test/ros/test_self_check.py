"""The self-check's diagnosis from the pipeline's counters (ROS-free: ``ros/self_check.py``)."""

from alster_mapping.ros.self_check import SelfCheck, diagnose

TOPICS = {"color": "/cam/color", "depth": "/cam/depth"}


def stats(mapped=0, received=None, rejected=None, skipped=None, latest=None):
    return {"mapped": mapped, "received": received or {}, "rejected": rejected or {}, "skipped": skipped or {}, "latest": latest or {}}


def test_each_missing_piece_is_named():
    silent = diagnose(stats(received={"color": 5}), TOPICS, "/cam/info", 0.02)
    assert "no messages on the depth (/cam/depth)" in silent and "no camera_info either" in silent
    unsynced = diagnose(stats(received={"color": 5, "depth": 7, "camera_info": 3}), TOPICS, "/cam/info", 0.02)
    assert "no synchronised set" in unsynced and "colour 5, depth 7" in unsynced and "0.02" in unsynced
    rejected = diagnose(
        stats(received={"color": 5, "depth": 5}, rejected={"future_stamp": 10}, latest={"rejected.future_stamp": "stamp ahead"}),
        TOPICS, "/cam/info", 0.02,
    )  # fmt: skip
    assert "rejected (future_stamp: stamp ahead)" in rejected
    base = {"color": 5, "depth": 5, "frames": 5}
    for reason, text, expect in (
        ("missing_camera_info", "no CameraInfo received", "no CameraInfo on /cam/info"),
        ("pose_unavailable", "TF map <- camera: frame 'camera' does not exist", "no camera pose for the frames: TF map <- camera"),
        ("pose_extrapolation", "TF map <- camera: would extrapolate", "would extrapolate"),
        ("no_valid_depth", "the depth image has no finite positive value", "every depth image is invalid"),
        ("bad_encoding", "yuv422", "every frame is skipped (bad_encoding): yuv422"),
    ):
        found = diagnose(stats(received=base, skipped={reason: 5}, latest={f"skipped.{reason}": text}), TOPICS, "/cam/info", 0.02)
        assert expect in found, found


def test_reported_once_per_problem_after_the_timeout_and_cleared_by_mapping():
    now = [0.0]
    reports = []
    check = SelfCheck(2.0, reports.append, clock=lambda: now[0])
    silent = stats()
    assert check.update(silent, TOPICS, "/i", 0.02) is None  # too early
    now[0] = 2.5
    assert "no messages" in check.update(silent, TOPICS, "/i", 0.02)
    check.update(silent, TOPICS, "/i", 0.02)
    assert len(reports) == 1 and "no frame mapped for 2 s since the start" in reports[0]
    assert check.update(stats(mapped=1), TOPICS, "/i", 0.02) is None and "mapped again" in reports[-1]
    now[0] = 3.0
    assert check.update(stats(mapped=1), TOPICS, "/i", 0.02) is None  # within the timeout of the last mapped frame
    now[0] = 10.0
    assert check.update(stats(mapped=1), TOPICS, "/i", 0.02, paused=True) is None  # pausing is not a problem
    check.timeout = 0.0
    now[0] = 100.0
    assert check.update(stats(mapped=1), TOPICS, "/i", 0.02) is None  # off

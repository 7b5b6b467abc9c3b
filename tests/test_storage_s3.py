"""The S3 frame store under moto: objects written, read, encrypted, and deleted by retention."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from kyc_llm.sessions.framestore import FrameStoreError, S3FrameStore, frame_key
from test_api_support import Api, noise_jpeg

BUCKET = "kyc-frames-test"


@pytest.fixture
def aws_credentials(monkeypatch):
    """Fake credentials, so nothing can reach a real account."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_SECURITY_TOKEN", "testing"), ("AWS_SESSION_TOKEN", "testing"),
                        ("AWS_DEFAULT_REGION", "eu-west-1")):
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3(aws_credentials):
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield client


def keys(s3, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def test_ping_says_whether_the_bucket_answers(s3):
    S3FrameStore(BUCKET, "frames", region="eu-west-1").ping()
    with pytest.raises(FrameStoreError, match="does not answer"):
        S3FrameStore("no-such-bucket", "frames", region="eu-west-1").ping()


def test_put_get_delete(s3):
    store = S3FrameStore(BUCKET, "frames", region="eu-west-1")
    for seq in range(3):
        assert store.put(frame_key("a" * 32, seq, "%016x" % seq), b"jpeg-%d" % seq) == frame_key("a" * 32, seq, "%016x" % seq)
    store.put(frame_key("b" * 32, 0, "0" * 16), b"other")
    assert keys(s3) == [f"frames/{'a' * 32}/00000{i}-{i:016x}.jpg" for i in range(3)] + [f"frames/{'b' * 32}/000000-{'0' * 16}.jpg"]
    head = s3.head_object(Bucket=BUCKET, Key=f"frames/{'a' * 32}/000001-{1:016x}.jpg")
    assert head["ServerSideEncryption"] == "AES256" and head["ContentType"] == "image/jpeg"
    assert store.get(frame_key("a" * 32, 1, "%016x" % 1)) == b"jpeg-1"
    store.delete_session("a" * 32)
    assert keys(s3) == [f"frames/{'b' * 32}/000000-{'0' * 16}.jpg"]
    with pytest.raises(FrameStoreError):
        store.get(frame_key("a" * 32, 1, "%016x" % 1))
    with pytest.raises(FrameStoreError):
        store.put("../escape.jpg", b"x")


def test_missing_bucket_is_a_typed_error(s3):
    store = S3FrameStore("no-such-bucket", region="eu-west-1")
    with pytest.raises(FrameStoreError, match="NoSuchBucket"):
        store.put(frame_key("a" * 32, 0, "0" * 16), b"x")


def test_the_service_keeps_frames_in_s3_until_the_decision(s3, app_config, clock):
    from kyc_llm.web import create_app

    app_config.update(frame_store="s3", s3_bucket=BUCKET, s3_region="eu-west-1", s3_prefix="kyc/")
    app = create_app(app_config, environ={}, clock=clock)
    client = app.test_client()
    api = Api(client, clock)
    frames = [noise_jpeg(i) for i in range(3)]
    assert api.post_frames([(i, i / 8, d) for i, d in enumerate(frames)]).status_code == 200
    stored = keys(s3, f"kyc/{api.id}/")
    assert len(stored) == 3
    assert s3.get_object(Bucket=BUCKET, Key=stored[0])["Body"].read() == frames[0]
    assert api.complete().get_json()["result"]["decision"] == "fail"
    assert keys(s3, f"kyc/{api.id}/") == []  # a failed session keeps no frames
    app.extensions["kyc"].close()

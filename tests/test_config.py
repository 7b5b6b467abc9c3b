"""The service's settings: secrets never appear when a Config is printed or logged."""

from __future__ import annotations

from kyc_llm.config import Config


def test_secrets_stay_out_of_repr() -> None:
    config = Config.from_env({"KYC_OPERATOR_API_KEY": "operator-key-0123456789", "AWS_SECRET_ACCESS_KEY": "aws-s3cret",
                              "ANTHROPIC_API_KEY": "sk-ant-s3cret"})
    text = repr(config)
    assert "operator-key-0123456789" not in text and "aws-s3cret" not in text and "sk-ant-s3cret" not in text
    assert config.operator_api_key == "operator-key-0123456789"  # kept, only not shown
    assert config.llm_env["ANTHROPIC_API_KEY"] == "sk-ant-s3cret"

"""Video-KYC liveness service: challenge-response liveness with classical CV and an LLM judge."""

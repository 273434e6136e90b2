"""The workflow and GDPR rules, between the HTTP handlers and the models."""

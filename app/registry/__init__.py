"""The demo catalogue and the sample systems it maps."""

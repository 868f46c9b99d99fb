"""vmimages: a VM image catalog service that speaks the Zenlayer Cloud API 2.0 (VM)."""

__version__ = "0.1.0"

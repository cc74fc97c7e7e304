"""Domain adaptation methods (``--adapt METHOD``), one per file, registered under ``fewshot.adaptations``."""

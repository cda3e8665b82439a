"""downstream: forecast LLM benchmark scores from small-model ladders."""
__version__ = "0.1.0"

"""Grid files: parsing, validation and the models of a campaign and of one point."""

from llem.config.load import Loaded, load_campaign, load_text
from llem.config.models import Campaign, Dataset, Measurement, Point, Resources

__all__ = ["Campaign", "Dataset", "Loaded", "Measurement", "Point", "Resources", "load_campaign",
           "load_text"]

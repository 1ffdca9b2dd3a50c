"""The one exception type of the data layer."""


class DatasetError(ValueError):
    """Bad or missing dataset input. The message names the video, frame or file at fault."""

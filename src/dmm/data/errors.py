"""The one exception type of the data layer."""

from ..errors import InputError


class DatasetError(InputError):
    """Bad or missing dataset input. The message names the video, frame or file at fault."""

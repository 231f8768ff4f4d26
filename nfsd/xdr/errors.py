"""The one exception the XDR layer raises."""


class XdrError(ValueError):
    """Input that is not a valid encoding of the expected type (or a value that cannot be encoded)."""

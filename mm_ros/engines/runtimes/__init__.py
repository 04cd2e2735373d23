"""One module per runtime; the table of implementations lives in :mod:`mm_ros.engines.selection`."""

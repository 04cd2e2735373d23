"""Pure core of mm_ros: value types, errors and algorithms in numpy and the stdlib only."""

"""Small helpers shared by every part: hashing, atomic files, progress."""

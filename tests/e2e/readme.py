"""The project's README.md, read by the tests that run its configuration snippets as they stand
(an operator copies what the tests run)."""
import os

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def readme_block(after):
    """The first fenced block of README.md after the line that starts with `after`, as lines."""
    with open(README) as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    opening = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    closing = next(i for i in range(opening + 1, len(lines)) if lines[i].startswith("```"))
    return lines[opening + 1:closing]

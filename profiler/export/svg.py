"""Profile -> the interactive flame graph (drawn by `flamegraph`)."""
from __future__ import annotations

import dataclasses
from typing import Callable

from profiler.export.folded import fold, frame_sources
from profiler.model.profile import Profile
from profiler.options import Grouping
from profiler.symbolize.summary import NO_SAMPLES

RenderOptionsFactory = Callable[[str, str], object]  # (title, subtitle) -> flamegraph Options


def write(profile: Profile, grouping: Grouping = Grouping.COMM,
          render_options: RenderOptionsFactory | None = None, srcline: bool = False,
          **_ignored) -> bytes:
    from flamegraph.api import render
    from flamegraph.options import Options
    title, subtitle = profile.meta.title, profile.meta.subtitle
    options = render_options(title, subtitle) if render_options else \
        Options(title=title, subtitle=subtitle)
    # Each frame's tooltip names where it was sampled most; without source
    # lines the map is empty and the picture is what it always was.
    options = dataclasses.replace(options, empty_message=NO_SAMPLES,
                                  sources=frame_sources(profile, srcline))
    return render(fold(profile, grouping, srcline=srcline), options).svg

"""Unlabelled frames rendered by the Meta-World scenes (cde_core.sim.scene): each episode runs the task's
scripted policy and keeps frames spread over it (start, motion, end state, hand moved clear), so the
backbone sees objects in every state, the arm in many poses, and randomised colours, lights and cameras.

Frames are written once as PNG under `cache_dir/<task>/<seed>/` (an episode with its `done` marker is not
rendered again), then read like an image folder.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

from cde_core.pretrain.sources.base import Frame, FrameSourceError, read_rgb

_LOG = logging.getLogger(__name__)
DONE_MARKER = "done"


@dataclass(frozen=True)
class SimEpisode:
    task: str
    seed: int
    cameras: tuple[str, ...]
    size: int
    frames_per_episode: int
    max_steps: int
    randomize: bool
    camera_jitter: bool


def render_episode(episode: SimEpisode, out: str) -> int:
    """Render one episode's frames into `out` (PNG per camera and moment); returns the frame count."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from PIL import Image

    from cde_core.sim.scene import MetaWorldScene, SceneConfig

    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    scene = MetaWorldScene(SceneConfig(task=episode.task, seed=episode.seed, cameras=episode.cameras,
                                       size=episode.size, randomize_appearance=episode.randomize,
                                       camera_jitter=episode.camera_jitter))
    try:
        # Frames at evenly spaced steps of the policy rollout, then the end state and the hand moved clear.
        stride = max(1, episode.max_steps // max(1, episode.frames_per_episode - 2))
        written = 0

        def snapshot(tag: str) -> None:
            nonlocal written
            for camera in episode.cameras:
                Image.fromarray(scene.render(camera)).save(directory / f"{camera}_{tag}.png")
                written += 1

        for step in range(episode.max_steps):
            if step % stride == 0:
                snapshot(f"{step:04d}")
            if scene.step():
                break
        for _ in range(10):
            scene.hold()
        snapshot("end")
        scene.move_hand_clear()
        snapshot("clear")
    finally:
        scene.close()
    (directory / DONE_MARKER).write_text(str(written))
    return written


def _render_job(job: tuple[SimEpisode, str]) -> int:
    return render_episode(*job)


class SimFrameSource:
    def __init__(self, cache_dir: str | Path, tasks: str = "core", seeds: str = "1000:1010",
                 cameras: str = "corner3,object", size: int = 128, frames_per_episode: int = 8,
                 max_steps: int = 300, randomize: bool = True, camera_jitter: bool = True, workers: int = 1,
                 progress: bool = True) -> None:
        from cde_core.sim.tasks import resolve_tasks

        try:
            start, stop = (int(x) for x in str(seeds).split(":"))
        except ValueError as exc:
            raise FrameSourceError(f"sim source seeds {seeds!r} must be START:STOP") from exc
        try:
            task_names = resolve_tasks(tasks)
        except ValueError as exc:
            raise FrameSourceError(f"sim source: {exc}") from exc
        self.cache_dir = Path(cache_dir)
        camera_names = tuple(c for c in str(cameras).split(",") if c)
        self.episodes = [SimEpisode(task, seed, camera_names, size, frames_per_episode, max_steps, randomize,
                                    camera_jitter) for task in task_names for seed in range(start, stop)]
        self.workers = workers
        self.progress = progress

    def _episode_dir(self, episode: SimEpisode) -> Path:
        return self.cache_dir / episode.task / str(episode.seed)

    def render_missing(self) -> None:
        """Render every episode not yet in the cache (in `workers` processes)."""
        from tqdm import tqdm

        todo = [(e, str(self._episode_dir(e))) for e in self.episodes
                if not (self._episode_dir(e) / DONE_MARKER).is_file()]
        if not todo:
            return
        _LOG.info("rendering %d Meta-World episodes into %s", len(todo), self.cache_dir)
        bar = tqdm(total=len(todo), desc="sim frames", unit="episode", disable=not self.progress)
        try:
            if self.workers > 1:
                with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn")) as pool:
                    for _ in pool.map(_render_job, todo):
                        bar.update()
            else:
                for job in todo:
                    _render_job(job)
                    bar.update()
        finally:
            bar.close()

    def describe(self) -> str:
        return f"sim {len(self.episodes)} episodes -> {self.cache_dir}"

    def frames(self) -> Iterator[Frame]:
        self.render_missing()
        for episode in self.episodes:
            paths = sorted(self._episode_dir(episode).glob("*.png"))
            if not paths:
                raise FrameSourceError(f"episode cache {self._episode_dir(episode)} has no frames; delete it")
            for path in paths:  # <camera>_<moment>.png: one clip per episode and camera
                camera = path.stem.rsplit("_", 1)[0]
                yield f"{episode.task}/{episode.seed}/{camera}", read_rgb(str(path))

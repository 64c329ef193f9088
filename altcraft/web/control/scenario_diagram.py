"""A scenario's graph laid out for the panel: nodes in layers by their distance from the
entry, edges with the field that names them, each node with its counts. Pure layout; the
template draws it as inline SVG (no script, so the panel's CSP holds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from altcraft.domain.scenarios import edges

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 190, 58, 30, 46, 10


@dataclass
class Box:
    id: str
    type: str
    x: int
    y: int
    entered: int = 0
    left: int = 0


@dataclass
class Line:
    x1: int
    y1: int
    x2: int
    y2: int
    label: str
    back: bool = False  # to a node at or above its source: a loop


@dataclass
class Diagram:
    boxes: list[Box] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    width: int = 0
    height: int = 0


def layout(nodes: list[dict[str, Any]], counts: dict[str, dict[str, int]]) -> Diagram:
    by_id = {n["id"]: n for n in nodes}
    start = next((n["id"] for n in nodes if n["type"] == "entry"), nodes[0]["id"] if nodes else None)
    depth: dict[str, int] = {}
    queue = [start] if start is not None else []
    if start is not None:
        depth[start] = 0
    while queue:  # breadth first: a node's layer is its shortest distance from the entry
        current = queue.pop(0)
        for _, target in edges(by_id[current]):
            if target in by_id and target not in depth:
                depth[target] = depth[current] + 1
                queue.append(target)
    for n in nodes:  # a saved graph reaches every node; keep any other visible anyway
        depth.setdefault(n["id"], max(depth.values(), default=-1) + 1)
    layers: dict[int, list[str]] = {}
    for n in nodes:
        layers.setdefault(depth[n["id"]], []).append(n["id"])
    widest = max((len(v) for v in layers.values()), default=1)
    diagram = Diagram(width=MARGIN * 2 + widest * BOX_W + (widest - 1) * GAP_X,
                      height=MARGIN * 2 + len(layers) * BOX_H + max(len(layers) - 1, 0) * GAP_Y)
    place: dict[str, Box] = {}
    for level, ids in sorted(layers.items()):
        row_w = len(ids) * BOX_W + (len(ids) - 1) * GAP_X
        x0 = (diagram.width - row_w) // 2
        for i, node_id in enumerate(ids):
            c = counts.get(node_id, {})
            box = Box(node_id, by_id[node_id]["type"], x0 + i * (BOX_W + GAP_X), MARGIN + level * (BOX_H + GAP_Y),
                      c.get("entered", 0), c.get("left", 0))
            place[node_id] = box
            diagram.boxes.append(box)
    for n in nodes:
        source = place[n["id"]]
        for name, target in edges(n):
            if target not in place:
                continue
            to = place[target]
            label = "" if name == "next" else name.replace("branches[", "#").replace("].next", "")
            same = next((line for line in diagram.lines if (line.x1, line.y1, line.x2, line.y2) ==
                         (source.x + BOX_W // 2, source.y + BOX_H, to.x + BOX_W // 2, to.y)), None)
            if same is not None:  # two edges between one pair (a branch whose yes and no agree): one line
                same.label = ", ".join(part for part in (same.label, label) if part)
                continue
            diagram.lines.append(Line(source.x + BOX_W // 2, source.y + BOX_H, to.x + BOX_W // 2, to.y, label,
                                      back=to.y <= source.y))
    return diagram

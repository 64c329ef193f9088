from altcraft.web.control.scenario_diagram import layout


def test_layers_follow_the_distance_from_the_entry_and_loops_are_marked():
    nodes = [{"id": "start", "type": "entry", "trigger": {"type": "api"}, "next": "a"},
             {"id": "a", "type": "branch", "condition": {"opened": "a"}, "yes": "end", "no": "b"},
             {"id": "b", "type": "wait", "seconds": 60, "next": "a"},
             {"id": "end", "type": "exit"}]
    d = layout(nodes, {"a": {"entered": 3, "left": 2}})
    y = {b.id: b.y for b in d.boxes}
    assert y["start"] < y["a"] < y["end"] == y["b"]
    assert next(b for b in d.boxes if b.id == "a").entered == 3
    assert sorted((line.label, line.back) for line in d.lines) == [("", False), ("", True), ("no", False),
                                                                   ("yes", False)]


def test_two_edges_between_one_pair_are_one_line_with_both_labels():
    nodes = [{"id": "start", "type": "entry", "trigger": {"type": "api"}, "next": "a"},
             {"id": "a", "type": "branch", "condition": {"opened": "a"}, "yes": "end", "no": "end"},
             {"id": "end", "type": "exit"}]
    assert [line.label for line in layout(nodes, {}).lines] == ["", "yes, no"]

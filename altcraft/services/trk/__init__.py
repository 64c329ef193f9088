"""Tracking processes (trkaction, trkimage): the lean click/open paths, the pages, the publisher."""

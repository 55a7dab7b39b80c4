"""Lab 12's lesson: a CNN detector finds and classifies the objects (the course's mAP of 1.1151 is an impossible value, so the bar here is ours: at least half the objects found, mAP@0.5 over 0.5).

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'detectors_find_objects',
        'Both detectors find the objects: mAP@0.5 over 0.5 on held-out canvases',
        'lab 12: "implement object detection with CNN backbone and bounding boxes"; reports mAP 1.1151',
        (gt("ssdlite.test_map_50", 0.5), gt("retinanet.test_map_50", 0.5),),
        turns=("not reached by training longer on the quick canvases (seed 42, SSDlite test mAP@0.5 after 248 "
               "updates 0.235, 992 0.357, 2,480 0.352; its validation loss rises after ~1,000 updates: 1,000 "
               "training canvases overfit); RetinaNet not measured beyond 248 updates (0.133). More canvases, not "
               "more epochs, is the next budget to try"),
    ),
)

"""Lab 12: object detection, torchvision's SSDlite vs RetinaNet, mAP on held-out images.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""

"""The full profile, rehearsed: every lab's full-profile stages on small fixtures of the canonical
data sets (served over loopback HTTP) and same-architecture stand-ins for pretrained weights, cut
to a few optimizer steps, so what breaks between the pieces shows in minutes, not after hours of
downloads and training on a GPU."""

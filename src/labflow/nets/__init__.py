"""Networks the labs share: CNNs, the course's VGG/ResNet builders, detectors, seq2seq and transformer translators, GAN pieces, attention readers, the MLP and seeded construction."""

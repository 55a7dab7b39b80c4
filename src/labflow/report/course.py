"""The course's own numbers (the lab file, ``LABS.md``'s "seed numbers" column), shown beside ours.

They were measured on the full data sets (MNIST, CIFAR-10, IMDB, ...) with the course's epochs,
and several of them come from a flawed setup (the flaw is part of the entry): a reader should
compare ours with them knowing both, not as a pass/fail mark.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CourseResult:
    reported: str  # what the course reports, in its own words and units
    on: str  # the data and setup behind it
    flaw: str = ""  # what makes the number not comparable, or the bug we fixed


COURSE: dict[str, CourseResult] = {
    "lab01": CourseResult("test accuracy 97.75%", "full MNIST", "loads data through Keras/TensorFlow"),
    "lab02": CourseResult("MSE 0.6742 (scaled target)", "California housing",
                          "trains one model twice in a row instead of two fresh models"),
    "lab03": CourseResult("batch GD 25%, SGD 10% test accuracy", "full MNIST",
                          "one shared lr + momentum: batch GD makes 15 updates and batch-1 diverges"),
    "lab04": CourseResult("SGD 48.65%, Adam 70.15%, RMSprop 68.68%", "CIFAR-10",
                          "saves initial weights but never reuses them (unequal starts)"),
    "lab05": CourseResult("no comparison reported", "Titanic", "only the baseline's log is shown"),
    "lab06": CourseResult("plain 72.87% vs BN+aug 76.92%", "CIFAR-10"),
    "lab07": CourseResult("no number reported", "Cats vs Dogs",
                          "a killed run restarts instead of resuming from its checkpoint"),
    "lab08": CourseResult("no comparison reported", "credit-card fraud", "only the weighted sampler is shown"),
    "lab09": CourseResult("test accuracy 98.02%", "full MNIST"),
    "lab10": CourseResult("simple 52.01%, VGG16 63.73%, ResNet18 64.74%", "CIFAR-10"),
    "lab11": CourseResult("figures only", "CIFAR-10", "visualises a net it never trained"),
    "lab12": CourseResult("mAP 1.1151", "Pascal VOC 2007",
                          "an impossible value from a wrong formula, measured on training data"),
    "lab13": CourseResult("92.01% after both phases", "ImageNet ResNet18 on flowers",
                          "evaluates both phases after fine-tuning, so both read the same number"),
    "lab14": CourseResult("RNN and LSTM both 0.0282 MSE (scaled)", "Melbourne daily minimum"),
    "lab15": CourseResult("LSTM 85.80%, GRU 86.15%", "IMDB 50k",
                          "pads at the end and reads the last step: the models read padding"),
    "lab16": CourseResult("no held-out score", "500 English-French pairs", "no test set"),
    "lab17": CourseResult("DistilBERT 92.15%", "IMDB 50k"),
    "lab18": CourseResult("no number reported", "Delhi PM2.5",
                          "uses an undefined variable; plots residuals before computing them"),
    "lab19": CourseResult("training Dice loss 0.1719 after 10 epochs; no IoU, no held-out score",
                          "Water Bodies satellite images at 256 px, ImageNet ResNet34 UNet",
                          "trains and shows training images only; defines an IoU it never calls"),
    "lab20": CourseResult("no quantitative metric", "Fashion-MNIST"),
    "lab21": CourseResult("no quantitative metric", "horse2zebra"),
    "lab22": CourseResult("no number reported", "MNIST",
                          "normalises to [-1, 1] then uses BCE against a sigmoid output"),
    "lab23": CourseResult("PSNR 18.57 dB", "MNIST"),
    "lab24": CourseResult("figures only", "toy sentences", "visualises an untrained model"),
    "lab25": CourseResult("BLEU 0.3369", "5 English-French pairs", "measured on its 5 training pairs"),
}

"""Data: datasets, the DataLoader, paired (image, label) transforms, and the built-in SyntheticScenes.

    from minipsp.data import DataLoader, transforms as T
    train_tf = T.Compose([T.RandScale((0.5, 2.0)), T.RandRotate((-10, 10)), T.RandomGaussianBlur(),
                          T.RandomHorizontalFlip(), T.Crop(65, crop_type="rand"), T.ToTensor(), T.Normalize()])
    loader = DataLoader(dataset, batch_size=8, shuffle=True, drop_last=True, seed=0)
    for images, labels in loader: ...      # (8, 3, 65, 65) float32, (8, 65, 65) int64
"""

from minipsp.data import transforms
from minipsp.data.dataset import DataLoader, Dataset, collate
from minipsp.data.readers import ADE20K, Cityscapes, DatasetError, SemsegList, VOCSegmentation
from minipsp.data.sampler import DistributedSampler
from minipsp.data.synthetic import SyntheticScenes

__all__ = ["ADE20K", "Cityscapes", "DataLoader", "Dataset", "DatasetError", "DistributedSampler", "SemsegList",
           "SyntheticScenes", "VOCSegmentation", "collate", "transforms"]

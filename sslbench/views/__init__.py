"""Multi-view augmentation per modality; every sample draws its own random parameters."""

"""Fine-tuning a trained model on a user's own faces: the recipe and its options."""

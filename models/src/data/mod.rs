//! Fashion-MNIST: the IDX reader, where the data is looked for, shuffled mini-batches.

"""Quality measures of translations: the metrics (`metrics`), the FID Inception network
(`inception`), the suite over a run's test images (`suite`) and its records (`report`)."""

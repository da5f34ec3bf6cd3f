"""Model sources: the wrapper every attack sees, the embedded zoo, timm, safe weight loading."""

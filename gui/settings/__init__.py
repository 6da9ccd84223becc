"""The Settings dialog: its shell (dialog.py), one module per page, the Qt item models of the model library and the
CPU table (item_models.py) and the widgets they share (common.py)."""

//! Pictures: image grids and loss curves as PNG files.

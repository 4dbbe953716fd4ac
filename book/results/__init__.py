"""The book's stored results, installed with the library as ``sivae_core.stored_results`` (see
:mod:`sivae_core.results`); this file only makes the folder a package so that every install ships it."""

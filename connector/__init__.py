"""webitel-creatio-sync connector: clients for the Webitel and Creatio APIs."""

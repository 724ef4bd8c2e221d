"""Lets TimeTracker run on Debian's Flask-Babel 2.0 (it calls the Flask-Babel 4 API).

Loaded by Python at start-up when this folder is on PYTHONPATH; `npm run example:timetracker` and
the TimeTracker tests put it there. Not part of the integration: TimeTracker's own image and
requirements bring Flask-Babel 4, where this does nothing.
"""
try:
    import flask_babel

    if not hasattr(flask_babel.Babel, "_authgate_v4_keywords"):
        _init_app = flask_babel.Babel.init_app

        def init_app(self, app, *args, default_locale=None, default_timezone=None, locale_selector=None,
                     timezone_selector=None, **kwargs):
            try:  # Flask-Babel 4 takes the keywords itself
                return _init_app(self, app, *args, default_locale=default_locale, default_timezone=default_timezone,
                                 locale_selector=locale_selector, timezone_selector=timezone_selector, **kwargs)
            except TypeError:
                pass
            if default_locale:
                app.config.setdefault("BABEL_DEFAULT_LOCALE", default_locale)
            if default_timezone:
                app.config.setdefault("BABEL_DEFAULT_TIMEZONE", default_timezone)
            _init_app(self, app, *args, **kwargs)
            if locale_selector is not None:
                self.localeselector(locale_selector)
            if timezone_selector is not None:
                self.timezoneselector(timezone_selector)

        flask_babel.Babel.init_app = init_app
        flask_babel.Babel._authgate_v4_keywords = True
except ImportError:
    pass

"""Crons: schedules of runs, fired by exactly one worker of the fleet each time they fall due."""

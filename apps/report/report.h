#pragma once
// Everything the apps show the user: image grids, the loss curve, the progress line, the metrics log.
#include "apps/report/image_grid.h"
#include "apps/report/loss_curve.h"
#include "apps/report/metrics_log.h"
#include "apps/report/progress.h"

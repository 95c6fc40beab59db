/* sf_outcome.c - what a call's path counts as (see sf_outcome.h). */
#include "core/sf_outcome.h"

unsigned sf_path_stats(enum sf_path p)
{
	/* Every caller that joined a flight is a follower, whatever became
	 * of it; the rarer events are counted on top. */
	static const unsigned mask[SF_PATH_COUNT] = {
		[SF_PATH_LEADER] = SF_STAT_BIT(SF_STAT_LEADERS),
		[SF_PATH_FOLLOWER] = SF_STAT_BIT(SF_STAT_FOLLOWERS),
		[SF_PATH_PROMOTED] = SF_STAT_BIT(SF_STAT_FOLLOWERS) |
		                     SF_STAT_BIT(SF_STAT_PROMOTIONS),
		[SF_PATH_EXPIRED] = SF_STAT_BIT(SF_STAT_FOLLOWERS) |
		                    SF_STAT_BIT(SF_STAT_EXPIRED),
		[SF_PATH_RETRIED] = SF_STAT_BIT(SF_STAT_FOLLOWERS) |
		                    SF_STAT_BIT(SF_STAT_RETRIED),
		[SF_PATH_FALLBACK] = SF_STAT_BIT(SF_STAT_FOLLOWERS) |
		                     SF_STAT_BIT(SF_STAT_FALLBACKS),
		[SF_PATH_ALONE] = 0,
	};
	return (unsigned)p < SF_PATH_COUNT ? mask[p] : 0;
}
